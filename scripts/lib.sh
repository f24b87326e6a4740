# Shared by scripts/test and scripts/bench: finding Python interpreters and
# preparing one virtual environment per interpreter under .venv/.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUPPORTED_VERSIONS="3.10 3.11 3.12 3.13"

# Print the path of a working python for version $1 (like 3.12), or nothing.
find_python() {
    local version="$1" candidate
    local pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    for candidate in \
        "$pyenv_root"/versions/"$version".*/bin/python"$version" \
        "$(command -v "python$version" 2>/dev/null)" \
        /usr/bin/python"$version" /usr/local/bin/python"$version"; do
        if [ -x "$candidate" ] && "$candidate" -c 'import sys, venv' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Create (or reuse) .venv/py$version for interpreter $2 and install the
# package with the extras in $3 (comma-separated). Reinstalls when
# pyproject.toml, setup.py or the C sources changed since the last
# install, or when an extra is missing. Extras accumulate, so alternating
# scripts/test and scripts/bench does not reinstall each time. Prints the
# venv path.
prepare_venv() {
    local version="$1" python="$2" extras="$3"
    local venv="$ROOT/.venv/py$version"
    local stamp="$venv/.aiospawn-installed"
    local digest installed_digest="" installed_extras="" wanted extra

    digest="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" "$ROOT/aiospawn/__init__.py" "$ROOT"/_native/* \
        | sha256sum | cut -d' ' -f1)"
    if [ -f "$stamp" ]; then
        installed_digest="$(sed -n 1p "$stamp")"
        installed_extras="$(sed -n 2p "$stamp")"
    fi
    # The union of the extras installed before and those asked for now.
    wanted="$(printf '%s\n' "${installed_extras//,/$'\n'}" "${extras//,/$'\n'}" | sed '/^$/d' | sort -u | paste -sd, -)"

    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv" >&2
    fi
    if [ "$installed_digest" != "$digest" ] || [ "$installed_extras" != "$wanted" ] \
        || [ ! -e "$ROOT"/aiospawn/_core.abi3.so ]; then
        echo "Installing aiospawn[$wanted] into .venv/py$version (builds the C core)..." >&2
        rm -f "$stamp"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || return 1
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$wanted]" >&2 || return 1
        printf '%s\n%s\n' "$digest" "$wanted" > "$stamp"
    fi
    echo "$venv"
}
