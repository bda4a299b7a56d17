#!/usr/bin/env bash
# Refreshes the committed dashboard screenshots in docs/screenshots/ (shown in the
# README) by running the browser test with TANDEM_UPDATE_SCREENSHOTS=1. The test command
# itself writes them under target/ and leaves docs/ alone. Needs what that test needs:
# Chromium and chromedriver (see the README's "Running the tests").
set -euo pipefail
cd "$(dirname "$0")/.."

TANDEM_UPDATE_SCREENSHOTS=1 cargo nextest run --locked --test it -E 'test(/^dashboard_browser::/) | test(/^connect_browser::/) | test(/^day_budget::.*embedded/)'
git status --short docs/screenshots
