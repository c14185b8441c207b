#!/usr/bin/env bash
# Runs the TUF conformance suite (theupdateframework/tuf-conformance, tag v2.4.0 unless
# TUF_CONFORMANCE_REF names another tag or commit of the git dir) against the
# `notar-conformance` client binary, and exits with pytest's status. It does not build the
# binary. Extra arguments go to pytest as given, e.g. `-k test_unusual_role_name` or `-v`.
#
#   NOTAR_CONFORMANCE_BIN  the client binary; default: the first of
#                          ${CARGO_TARGET_DIR:-/var/cache/notar-target}/{debug,release} and
#                          target/{debug,release} that holds notar-conformance
#   TUF_CONFORMANCE_DIR    the suite's source: an extracted checkout, or a git dir that has
#                          tag v2.4.0; default /work/.mirror/theupdateframework+tuf-conformance/repo
#
# The suite's Python dependencies go in a venv under
# ${XDG_CACHE_HOME:-/var/cache}/notar-tuf-conformance/venv, made once and then reused.
# Needs python3 (>= 3.10), faketime, and PyPI the first time. Exit 2 if something is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

ref=${TUF_CONFORMANCE_REF:-v2.4.0}
suite=${TUF_CONFORMANCE_DIR:-/work/.mirror/theupdateframework+tuf-conformance/repo}
cache=${XDG_CACHE_HOME:-/var/cache}/notar-tuf-conformance
die() { printf 'tuf-conformance.sh: %s\n' "$*" >&2; exit 2; }

# The suite's source: a checkout as is, or tag $ref exported from a git dir.
work=$(mktemp -d /tmp/notar-tuf-conformance.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [[ -f $suite/tuf_conformance/conftest.py ]]; then
  src=$suite
elif git --git-dir="$suite" rev-parse -q --verify "$ref^{commit}" >/dev/null 2>&1; then
  src=$work/tuf-conformance
  mkdir "$src"
  git --git-dir="$suite" archive "$ref" | tar -x -C "$src"
else
  die "the conformance suite's source is absent: $suite is neither a tuf-conformance checkout
nor a git dir with tag $ref. Get it with \`fetch github:theupdateframework/tuf-conformance\`
(tag $ref) and set TUF_CONFORMANCE_DIR to the checkout or to its git dir."
fi

# The suite's own pinned dependencies, from its pyproject.toml.
mapfile -t deps < <("${PYTHON:-python3}" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' "$src/pyproject.toml")
[[ ${#deps[@]} -gt 0 ]] || die "no dependencies found in $src/pyproject.toml"

# The client under test.
bin=${NOTAR_CONFORMANCE_BIN:-}
if [[ -z $bin ]]; then
  for dir in "${CARGO_TARGET_DIR:-/var/cache/notar-target}"/{debug,release} "$repo"/target/{debug,release}; do
    if [[ -x $dir/notar-conformance ]]; then bin=$dir/notar-conformance; break; fi
  done
  [[ -n $bin ]] || die "the notar-conformance binary is missing: build it with
  cargo build -p notar-tests --bin notar-conformance
or point NOTAR_CONFORMANCE_BIN at it"
fi
[[ -x $bin ]] || die "the notar-conformance binary is missing: $bin is not an executable file"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
# The suite splits its --entrypoint on spaces.
[[ $bin != *' '* ]] || die "the binary's path must not contain a space: $bin"
command -v faketime >/dev/null || die "faketime is not installed (apt-get install faketime)"

# The venv, (re)made when missing or when the pinned dependencies change.
venv=$cache/venv-$(printf '%s' "${deps[*]}" | sha256sum | cut -c1-12)
if [[ "$(cat "$venv/.notar-deps" 2>/dev/null)" != "${deps[*]}" ]]; then
  printf '== preparing the Python venv in %s\n' "$venv" >&2
  rm -rf "$venv"
  mkdir -p "$cache"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${deps[@]}"
  printf '%s' "${deps[*]}" >"$venv/.notar-deps"
fi

printf '== tuf-conformance %s from %s\n== client %s\n' "$ref" "$suite" "$bin" >&2
status=0
"$venv/bin/python" -m pytest -p no:cacheprovider "$src/tuf_conformance" \
  --entrypoint "$bin" "$@" || status=$?
exit "$status"
