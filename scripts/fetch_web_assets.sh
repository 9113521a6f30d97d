#!/usr/bin/env bash
# Fetch the JavaScript that the rendered book would otherwise load from CDNs
# (MathJax 3, require.js, the Jupyter widget HTML manager) from the npm
# registry into _vendor/ (served as the book's _static/). Nothing here is committed: the files are
# taken from the registry at build time, at pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=_vendor
MATHJAX=3.2.2
REQUIREJS=2.3.7
HTML_MANAGER=1.0.15
stamp="$dest/.versions"
want="mathjax@$MATHJAX requirejs@$REQUIREJS html-manager@$HTML_MANAGER"
extra=_vendor_extra  # copied to the site's root (html_extra_path): files pages ask for by a relative URL
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$extra" ]; then exit 0; fi
command -v npm >/dev/null || { echo "fetch_web_assets: npm is needed to fetch the offline web assets" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "mathjax@$MATHJAX" "requirejs@$REQUIREJS" \
    "@jupyter-widgets/html-manager@$HTML_MANAGER" >/dev/null )
for pkg in mathjax requirejs html-manager; do
  mkdir -p "$tmp/$pkg"
  tar xzf "$tmp"/*"$pkg"-*.tgz -C "$tmp/$pkg"
done
rm -rf "$dest.new" && mkdir -p "$dest.new"
cp -r "$tmp/mathjax/package/es5" "$dest.new/mathjax"
cp "$tmp/requirejs/package/require.js" "$dest.new/require.js"
cp -r "$tmp/html-manager/package/dist" "$dest.new/html-manager"
# The widget manager's stylesheet loads its icon fonts from "@jupyter-widgets/html-manager/dist/"
# relative to the page, so a copy sits beside the pages of each folder (the root and book/).
rm -rf "$extra.new"
for where in "" book/; do
  mkdir -p "$extra.new/$where@jupyter-widgets/html-manager/dist"
  find "$tmp/html-manager/package/dist" -maxdepth 1 -type f \( -name '*.woff' -o -name '*.woff2' -o -name '*.ttf' \
    -o -name '*.eot' -o -name '*.svg' \) -exec cp {} "$extra.new/$where@jupyter-widgets/html-manager/dist/" \;
done
echo "$want" > "$dest.new/.versions"
rm -rf "$extra" && mv "$extra.new" "$extra"
rm -rf "$dest" && mv "$dest.new" "$dest"
echo "fetch_web_assets: $want -> $dest"
