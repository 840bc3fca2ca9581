#!/usr/bin/env bash
# Sets up a fresh machine for aiocr, idempotently:
#   1. Debian packages the build, the tests and the benchmarks need;
#   2. the ddddocr 1.6.1 models (OCR: common_old.onnx, common.onnx and their charsets; click-captcha
#      detection: common_det.onnx), ONNX Runtime's shared library and Intel IPP's image library
#      (slide matching), from PyPI wheels into $AIOCR_MODEL_DIR (default ./models);
#   3. the test tools: the captcha client libraries (a Python venv, and npm), the OpenAPI
#      validator and schemathesis (a Python venv), playwright-core for the browser tests (npm),
#      the official MCP SDKs (a Python venv, and npm);
#   4. a release build of every binary.
# Every step is skipped when its result is already there, so running it again is cheap.
set -euo pipefail

cd "$(dirname "$0")/.."
MODEL_DIR="${AIOCR_MODEL_DIR:-./models}"
DDDDOCR_VERSION="1.6.1"
ORT_VERSION="1.32.0"
# Intel IPP: the version ddddocr's OpenCV wheel (opencv-python-headless 5.1) is built with; its
# matchTemplate correlates through IPP, so slides call the same function for the same digits.
IPP_VERSION="2026.1.0"

# Packages: cmake+nasm build the bundled libjpeg-turbo (Pillow decodes JPEG with libjpeg-turbo;
# exact answers need the same decoder), nginx+wrk are the reference peers in tests and benchmarks,
# openssl's command line makes the TLS benchmark's certificate and reads the suite each server
# negotiates (bench/point_tls_vs_nginx.sh), and the package shellcheck lints the operator
# scripts. The console's browser tests run Debian's Chromium (and its WebDriver, for drivers
# that want one); a CJK font lets its screenshots show the Chinese answers of the old model.
# nats-server joins the nodes and workers of a cluster (docs/cluster.md): the cluster tests and
# bench/cluster.sh run it on loopback; a single-node aiocr never needs it.
APT_PACKAGES=(cmake nasm pkg-config unzip nginx wrk openssl shellcheck python3-venv
    chromium chromium-driver fonts-wqy-microhei nats-server)

install_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The nginx package starts a system nginx on port 80; aiocr's tests run their own.
    if command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now nginx >/dev/null 2>&1 || true; fi
    $sudo nginx -s stop >/dev/null 2>&1 || true
}

fetch_models() {
    mkdir -p "$MODEL_DIR"
    # Every file is required, so a machine set up before a model was added fetches it now.
    if [ -f "$MODEL_DIR/common_old.onnx" ] && [ -f "$MODEL_DIR/common.onnx" ] \
        && [ -f "$MODEL_DIR/common_det.onnx" ] \
        && [ -f "$MODEL_DIR/charset_old.json" ] && [ -f "$MODEL_DIR/charset_beta.json" ] \
        && [ -f "$MODEL_DIR/libonnxruntime.so" ]; then
        return 0
    fi
    local wheels="$MODEL_DIR/.wheels"
    mkdir -p "$wheels"
    echo "setup: fetching ddddocr==$DDDDOCR_VERSION and onnxruntime==$ORT_VERSION wheels from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" \
        "ddddocr==$DDDDOCR_VERSION" "onnxruntime==$ORT_VERSION"
    local tmp
    tmp="$(mktemp -d)"
    unzip -q -o "$wheels"/ddddocr-"$DDDDOCR_VERSION"-*.whl \
        'ddddocr/common_old.onnx' 'ddddocr/common.onnx' 'ddddocr/common_det.onnx' \
        'ddddocr/models/charset_manager.py' -d "$tmp"
    unzip -q -o "$wheels"/onnxruntime-"$ORT_VERSION"-*.whl 'onnxruntime/capi/libonnxruntime.so*' -d "$tmp"
    python3 scripts/extract_charsets.py "$tmp/ddddocr/models/charset_manager.py" "$MODEL_DIR"
    mv "$tmp/ddddocr/common_old.onnx" "$tmp/ddddocr/common.onnx" "$tmp/ddddocr/common_det.onnx" "$MODEL_DIR/"
    local libs=("$tmp"/onnxruntime/capi/libonnxruntime.so.*)
    mv "${libs[0]}" "$MODEL_DIR/libonnxruntime.so"
    rm -rf "$tmp" "$wheels"
    echo "setup: models and ONNX Runtime are in $MODEL_DIR"
}

# IPP's core and image libraries (the dispatcher and its per-CPU variants, ~80 MB) from Intel's
# wheel on PyPI into $MODEL_DIR/ipp. The dispatcher loads its variant by the name
# libippi<cpu>.so.12.1, which the wheel does not carry: a link of that name is made.
fetch_ipp() {
    local dir="$MODEL_DIR/ipp"
    local stamp="$dir/.version"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$IPP_VERSION" ]; then
        return 0
    fi
    local tmp
    tmp="$(mktemp -d)"
    echo "setup: fetching ipp==$IPP_VERSION from PyPI (slide matching as ddddocr's OpenCV does it)"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "ipp==$IPP_VERSION"
    mkdir -p "$dir"
    unzip -q -o -j "$tmp"/ipp-"$IPP_VERSION"-*.whl \
        '*/lib/libippcore.so.12' '*/lib/libippi.so.12' '*/lib/libippi[a-z][0-9].so.12' -d "$dir"
    local lib
    for lib in "$dir"/*.so.12; do
        ln -sf "$(basename "$lib")" "$lib.1"
    done
    rm -rf "$tmp"
    echo "$IPP_VERSION" > "$stamp"
    echo "setup: IPP is in $dir"
}

# The official captcha client libraries the tests drive against a live server, pinned in
# tests/clients/requirements.txt, in a venv of their own (nothing global is touched).
install_client_libraries() {
    local venv="tests/clients/.venv"
    local stamp="$venv/.requirements"
    if [ -f "$stamp" ] && cmp -s "$stamp" tests/clients/requirements.txt; then
        return 0
    fi
    echo "setup: installing the captcha client libraries into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
    cp tests/clients/requirements.txt "$stamp"
}

# The API description's tests: openapi-spec-validator and schemathesis, pinned in
# tests/openapi/requirements.txt, in a venv of their own.
install_openapi_tools() {
    local venv="tests/openapi/.venv"
    local stamp="$venv/.requirements"
    if [ -f "$stamp" ] && cmp -s "$stamp" tests/openapi/requirements.txt; then
        return 0
    fi
    echo "setup: installing the OpenAPI validator and schemathesis into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/openapi/requirements.txt
    cp tests/openapi/requirements.txt "$stamp"
}

# `npm ci` of DIR/package-lock.json into DIR/node_modules (Node.js 20 or later, npm), skipped
# when that lock file is what was installed last.
npm_ci_locked() {
    local dir="$1" what="$2"
    local stamp="$dir/node_modules/.package-lock.json.installed"
    if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
        return 0
    fi
    local major
    major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
    if [ "$major" -lt 20 ]; then
        echo "setup: $what needs Node.js 20 or later with npm (found: ${major})" >&2
        return 1
    fi
    echo "setup: installing $what into $dir/node_modules"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$stamp"
}

# The console's browser tests drive Chromium with playwright-core, installed from
# tests/browser/package-lock.json. Playwright's own browser download is not used: the tests
# run /usr/bin/chromium.
install_browser_driver() {
    npm_ci_locked tests/browser "playwright-core (the browser tests)"
}

# The captcha services' JavaScript client libraries the tests drive against a live server
# (@2captcha/captcha-solver, @antiadmin/anticaptchaofficial, node-capmonster), pinned in
# tests/npm_clients/package-lock.json.
install_npm_clients() {
    npm_ci_locked tests/npm_clients "the captcha client libraries from npm"
}

# The MCP tests' agents: the official MCP SDKs, Python (PyPI `mcp`, pinned in
# tests/mcp/requirements.txt, in a venv of its own) and TypeScript (npm
# @modelcontextprotocol/sdk, pinned by tests/mcp/package-lock.json).
install_mcp_sdks() {
    local dir="tests/mcp"
    local venv="$dir/.venv"
    if ! { [ -f "$venv/.requirements" ] && cmp -s "$venv/.requirements" "$dir/requirements.txt"; }; then
        echo "setup: installing the MCP Python SDK into $venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$dir/requirements.txt"
        cp "$dir/requirements.txt" "$venv/.requirements"
    fi
    npm_ci_locked "$dir" "the MCP TypeScript SDK"
}

build() {
    cargo build --release --workspace --quiet
}

# JetStream came with nats-server 2.2 and its key-value buckets with 2.6: refuse an older one.
check_nats_server() {
    local version
    version="$(nats-server --version | sed -E 's/.*v([0-9]+\.[0-9]+).*/\1/')"
    if ! printf '2.6\n%s\n' "$version" | sort -V -C; then
        echo "setup: nats-server $version is too old (JetStream key-value needs 2.6 or later)" >&2
        return 1
    fi
}

install_packages
check_nats_server
fetch_models
fetch_ipp
install_client_libraries
install_openapi_tools
install_browser_driver
install_npm_clients
install_mcp_sdks
build
