#!/usr/bin/env python3
"""Verifies a directory of TUF metadata with python-tuf's Metadata API.

Usage: verify_metadata.py DIR [DELEGATED_ROLE...]

Root must verify against itself, targets/snapshot/timestamp against root, and every named
delegated role (file `<role with / as %2F>.json`) against targets. Prints one line per
verified role; exits non-zero (with python-tuf's error) on any failure.
"""
import sys
from urllib.parse import quote

from tuf.api.metadata import Metadata


def load(directory, role):
    with open(f"{directory}/{quote(role, safe='')}.json", "rb") as f:
        return Metadata.from_bytes(f.read())


def verify(delegator, role, md):
    # python-tuf 7 takes the signed payload and the signatures separately.
    delegator.signed.verify_delegate(role, md.signed_bytes, md.signatures)


def main():
    directory, delegated = sys.argv[1], sys.argv[2:]
    root = load(directory, "root")
    verify(root, "root", root)
    print("root ok")
    targets = load(directory, "targets")
    for role in ("targets", "snapshot", "timestamp"):
        md = targets if role == "targets" else load(directory, role)
        verify(root, role, md)
        print(f"{role} ok")
    for role in delegated:
        md = load(directory, role)
        verify(targets, role, md)
        print(f"{role} ok ({len(md.signed.targets)} targets)")


if __name__ == "__main__":
    main()
