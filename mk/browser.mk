# Headless Chromium for the browser test of `autodrive show --html`
# (tests/builders/dataset/test_show_browser.py): Debian's `chromium` package, which plays
# the clips' H.264 MP4. The test drives it over the DevTools protocol on a pipe, so it
# needs no driver and no browser download.
#
# Include from the Makefile (`include mk/browser.mk`); `make test` depends on `browser`.
# Idempotent: an installed chromium is left alone. Skip-safe: without apt-get, or without
# root, or when apt-get fails, it says so and carries on, and the test is skipped with
# that reason.

APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends

.PHONY: browser

browser:
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "chromium: $$(command -v chromium)"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: no chromium and no apt-get here: the browser test of autodrive show will be skipped"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "note: chromium is not installed; as root: $(APT_INSTALL) chromium" \
	    "(until then the browser test of autodrive show is skipped)"; \
	else \
	  $(APT_INSTALL) chromium \
	    || { apt-get update && $(APT_INSTALL) chromium; } \
	    || echo "note: apt-get could not install chromium: the browser test of autodrive show will be skipped"; \
	fi
