#!/usr/bin/env bash
# The report's browser test renders it in headless Chromium (Debian's package). Install it
# when it is missing and we may; otherwise that one test skips and says why.
set -u
for name in chromium chromium-browser google-chrome; do
    command -v "$name" >/dev/null 2>&1 && exit 0
done
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "Installing Chromium (Debian package) for the report's browser test..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
        && exit 0
fi
echo "Chromium is not installed and cannot be installed here: the browser test will be skipped."
exit 0
