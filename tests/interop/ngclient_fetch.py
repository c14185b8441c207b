#!/usr/bin/env python3
"""Refreshes a repository served over HTTP with python-tuf's ngclient and looks up targets.

Usage: ngclient_fetch.py METADATA_URL METADATA_DIR NAME...

METADATA_DIR is the client's local metadata cache. When it holds no root.json yet, the
script fetches `1.root.json` from METADATA_URL and trusts it (trust on first use: for tests
only; the Rust side checks those bytes against the root the publisher signed). A later run
with the same directory starts from what the previous run verified, like a real client.

Runs `Updater.refresh()` (root chain, timestamp, snapshot, targets), then
`get_targetinfo(NAME)` for each NAME (walking delegations), and prints one line per name:
`NAME LENGTH SHA256`, or `NAME MISSING`. Targets are not downloaded. Exits non-zero with
python-tuf's error when anything fails to verify.

With NGCLIENT_ACCEPT_ENCODING set (such as `gzip`), the fetcher sends that Accept-Encoding
and urllib3 decodes the response, as a client on a slow network would have it; python-tuf
then checks lengths and hashes against the decoded bytes.
"""
import os
import sys
import urllib.request

from tuf.ngclient import Updater, Urllib3Fetcher
from tuf.ngclient._internal.proxy import ProxyEnvironment


class EncodingFetcher(Urllib3Fetcher):
    """Urllib3Fetcher that asks for a content coding."""

    def __init__(self, accept_encoding):
        super().__init__()
        self._proxy_env = ProxyEnvironment(
            headers={"User-Agent": "ngclient_fetch", "Accept-Encoding": accept_encoding}
        )


def bootstrap_root(metadata_url, metadata_dir):
    os.makedirs(metadata_dir, exist_ok=True)
    root_path = os.path.join(metadata_dir, "root.json")
    if os.path.exists(root_path):
        return
    with urllib.request.urlopen(f"{metadata_url.rstrip('/')}/1.root.json") as response:
        data = response.read()
    with open(root_path, "wb") as f:
        f.write(data)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    metadata_url, metadata_dir, names = sys.argv[1], sys.argv[2], sys.argv[3:]
    bootstrap_root(metadata_url, metadata_dir)
    encoding = os.environ.get("NGCLIENT_ACCEPT_ENCODING")
    fetcher = EncodingFetcher(encoding) if encoding else None
    updater = Updater(
        metadata_dir=metadata_dir,
        metadata_base_url=metadata_url,
        # Never used: no target is downloaded.
        target_base_url="http://127.0.0.1:9/targets/",
        bootstrap=None,
        fetcher=fetcher,
    )
    updater.refresh()
    for name in names:
        info = updater.get_targetinfo(name)
        if info is None:
            print(f"{name} MISSING")
        else:
            print(f"{name} {info.length} {info.hashes['sha256']}")


if __name__ == "__main__":
    main()
