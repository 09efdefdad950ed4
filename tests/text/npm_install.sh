#!/usr/bin/env bash
# Installs the JS reference and the real tokenizer files (tests/text/package-lock.json) into
# DIR/node_modules with `npm ci`, once per lock file: a stamp holds the lock's hash.
#   tests/text/npm_install.sh DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:?usage: npm_install.sh DIR}
command -v npm >/dev/null || { echo "npm_install: npm not found (scripts/install-deps installs nodejs)" >&2; exit 1; }
mkdir -p "$dir"
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$want" && -d "$dir/node_modules" ]]; then
  echo "npm_install: $dir up to date"
  exit 0
fi
cp "$here/package.json" "$here/package-lock.json" "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "$want" >"$dir/.stamp"
echo "npm_install: installed into $dir"
