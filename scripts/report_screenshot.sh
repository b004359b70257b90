#!/usr/bin/env bash
# Renders a report.html to a PNG with headless Chromium, to eyeball a report without a browser.
#
#   scripts/report_screenshot.sh REPORT_HTML [OUT_PNG] [WIDTH] [HEIGHT]
#
# Needs Chromium (Debian: `apt-get install chromium`). The page is self-contained, so Chromium is
# started with networking pointed nowhere: a request it tries would fail visibly instead of
# silently fetching something.
set -euo pipefail

if [[ $# -lt 1 || $# -gt 4 ]]; then
    echo "usage: $0 REPORT_HTML [OUT_PNG] [WIDTH] [HEIGHT]" >&2
    exit 2
fi
html=$1
out=${2:-${html%.html}.png}
width=${3:-1500}
height=${4:-2400}

if [[ ! -f $html ]]; then
    echo "error: $html does not exist; pass the report.html of a report artifact" >&2
    exit 1
fi
browser=""
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null; then
        browser=$candidate
        break
    fi
done
if [[ -z $browser ]]; then
    echo "error: no Chromium found; install it (Debian: apt-get install chromium)" >&2
    exit 1
fi

# Chromium resolves --screenshot relative to its own working directory; hand it absolute paths.
html_abs=$(cd "$(dirname "$html")" && pwd)/$(basename "$html")
out_abs=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)/$(basename "$out")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

# Headless Chromium logs D-Bus and GPU noise on machines without them; show its log only on failure.
log="$profile/chromium.log"
rm -f "$out_abs"
if ! "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --enable-logging=stderr --v=0 \
    --user-data-dir="$profile" --proxy-server="127.0.0.1:9" --proxy-bypass-list="<-loopback>" \
    --window-size="$width,$height" --screenshot="$out_abs" "file://$html_abs" >"$log" 2>&1 \
    || [[ ! -s $out_abs ]]; then
    cat "$log" >&2
    echo "error: $browser did not write $out_abs" >&2
    exit 1
fi
# Failed requests mean the page was not self-contained; console errors, a broken page.
status=0
if grep -E "net::ERR_|Failed to load resource" "$log" >&2; then
    echo "error: the page tried to load something from outside (see above)" >&2
    status=1
fi
if grep -E "Uncaught|CONSOLE.*[Ee]rror" "$log" >&2; then
    echo "error: the page logged errors (see above)" >&2
    status=1
fi
[[ $status -eq 0 ]] || exit $status
echo "wrote $out_abs"
