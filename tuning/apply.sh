#!/usr/bin/env bash
# Prepares a Linux host for aiocr with the files next to this script, and undoes it.
#
#   tuning/apply.sh --check  [--role server|loadgen|both]   current vs recommended, per key
#   tuning/apply.sh --apply  [--role server|loadgen|both]   raise what is below (needs root)
#   tuning/apply.sh --revert                                remove our files, restore old values
#
# --role: server (default) = the host running `aiocr serve`; loadgen = a host opening many
# connections (aiocr-loadgen, wrk); both = one box doing both (tests, benchmarks).
#
# --check exits 0 when every key is at least the recommendation, 1 when one is below, 2 on
# usage errors. Keys this kernel does not have are skipped with a message, never an error.
#
# --apply only ever RAISES: a key already at or above the recommendation is left alone (and
# commented out in the installed file, so boot does not lower it either). It writes the new
# values into /proc/sys (what `sysctl --load` does), installs the result as
# /etc/sysctl.d/<same name> for the next boots, installs limits.d/60-aiocr.conf as
# /etc/security/limits.d/60-aiocr.conf, and records each value it changed, once, in
# $STATE_DIR/previous-sysctl. Running it again changes nothing.
# --revert writes the recorded values back and deletes those files; nothing else is touched.
#
# Environment (tests point these at a temporary tree; the defaults are the real system):
#   PROC_SYS=/proc/sys  ETC_DIR=/etc  STATE_DIR=/var/lib/aiocr-tuning
set -euo pipefail

TUNING_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROC_SYS="${PROC_SYS:-/proc/sys}"
ETC_DIR="${ETC_DIR:-/etc}"
STATE_DIR="${STATE_DIR:-/var/lib/aiocr-tuning}"

SERVER_FILE="60-aiocr-server.conf"
LOADGEN_FILE="61-aiocr-loadgen.conf"
LIMITS_FILE="60-aiocr.conf"
STATE_FILE="$STATE_DIR/previous-sysctl"

usage() {
    echo "usage: $0 --check|--apply|--revert [--role server|loadgen|both]" >&2
    exit 2
}

die() {
    echo "apply.sh: $*" >&2
    exit 1
}

# The sysctl files a role uses, by name (the same name in tuning/sysctl.d and /etc/sysctl.d).
role_files() {
    case "$1" in
        server) echo "$SERVER_FILE" ;;
        loadgen) echo "$LOADGEN_FILE" ;;
        both) echo "$SERVER_FILE $LOADGEN_FILE" ;;
        *) usage ;;
    esac
}

# Prints "key<TAB>value" for every setting of a sysctl file, values with single spaces.
parse_settings() {
    sed -e 's/#.*//' "$1" | awk -F= 'NF >= 2 {
        key = $1; sub(/^[ \t]+/, "", key); sub(/[ \t]+$/, "", key)
        value = substr($0, index($0, "=") + 1); gsub(/[ \t]+/, " ", value)
        sub(/^ /, "", value); sub(/ $/, "", value)
        if (key != "") print key "\t" value
    }'
}

key_path() {
    echo "$PROC_SYS/${1//.//}"
}

# The kernel's current value with single spaces (multi-value keys are tab-separated in /proc).
current_value() {
    tr -s ' \t' '  ' <"$(key_path "$1")" | sed -e 's/^ //' -e 's/ $//'
}

# Numeric a >= b for non-negative integers of any length (bash arithmetic stops at 2^63-1,
# and fs.file-max can be 2^63-1 already).
num_ge() {
    local a="$1" b="$2"
    while [[ "$a" == 0?* ]]; do a="${a#0}"; done
    while [[ "$b" == 0?* ]]; do b="${b#0}"; done
    if [ "${#a}" -ne "${#b}" ]; then
        [ "${#a}" -gt "${#b}" ]
    else
        [[ "$a" > "$b" || "$a" == "$b" ]]
    fi
}

is_number() {
    [[ "$1" =~ ^[0-9]+$ ]]
}

# Whether the current value meets the recommendation. Most keys are minimums; a port range
# must contain the recommended range; tcp_tw_reuse is a mode (2 = loopback only is not "more"
# than 1 = everywhere), so it must match exactly, as must anything non-numeric.
meets() {
    local key="$1" current="$2" recommended="$3"
    local cur_low cur_high rec_low rec_high
    if [ "$key" = "net.ipv4.tcp_tw_reuse" ]; then
        [ "$current" = "$recommended" ]
    elif [[ "$recommended" == *" "* ]]; then
        read -r cur_low cur_high <<<"$current"
        read -r rec_low rec_high <<<"$recommended"
        is_number "${cur_low:-x}" && is_number "${cur_high:-x}" || return 1
        num_ge "$rec_low" "$cur_low" && num_ge "$cur_high" "$rec_high"
    elif is_number "$current" && is_number "$recommended"; then
        num_ge "$current" "$recommended"
    else
        [ "$current" = "$recommended" ]
    fi
}

# Every "key<TAB>recommended" of the role's files, first occurrence of a key wins.
role_settings() {
    local name
    for name in $(role_files "$1"); do
        parse_settings "$TUNING_DIR/sysctl.d/$name"
    done | awk -F'\t' '!seen[$1]++'
}

recorded_value() {
    [ -f "$STATE_FILE" ] || return 1
    awk -F'\t' -v key="$1" '$1 == key { print $2; found = 1; exit } END { exit !found }' "$STATE_FILE"
}

check() {
    local role="$1" below=0 skipped=0 key recommended current verdict
    printf '%-32s %-20s %-20s %s\n' KEY CURRENT RECOMMENDED VERDICT
    while IFS=$'\t' read -r key recommended; do
        if [ ! -f "$(key_path "$key")" ]; then
            printf '%-32s %-20s %-20s %s\n' "$key" "-" "$recommended" "skipped: not on this kernel"
            skipped=$((skipped + 1))
            continue
        fi
        current="$(current_value "$key")"
        if meets "$key" "$current" "$recommended"; then verdict="ok"; else
            verdict="below"
            below=$((below + 1))
        fi
        printf '%-32s %-20s %-20s %s\n' "$key" "$current" "$recommended" "$verdict"
    done < <(role_settings "$role")
    report_installed "$role"
    echo "limits of this shell (login sessions get limits.d/$LIMITS_FILE at next login; the service" \
        "gets LimitNOFILE/LimitMEMLOCK from aiocr.service): nofile $(ulimit -Sn), memlock KiB $(ulimit -Sl)"
    if [ "$below" -gt 0 ]; then
        echo "apply.sh: $below key(s) below the recommendation; fix: sudo $0 --apply --role $role"
        return 1
    fi
    echo "apply.sh: every key meets the recommendation ($skipped skipped)"
}

report_installed() {
    local name
    for name in $(role_files "$1"); do
        if [ -f "$ETC_DIR/sysctl.d/$name" ]; then
            echo "installed: $ETC_DIR/sysctl.d/$name"
        else
            echo "not installed: $ETC_DIR/sysctl.d/$name"
        fi
    done
    if [ -f "$ETC_DIR/security/limits.d/$LIMITS_FILE" ]; then
        echo "installed: $ETC_DIR/security/limits.d/$LIMITS_FILE"
    else
        echo "not installed: $ETC_DIR/security/limits.d/$LIMITS_FILE"
    fi
}

# Raises one key if it is below; records the value it replaced, once (a second apply must
# not overwrite the original with our own value).
raise_key() {
    local key="$1" recommended="$2" current
    current="$(current_value "$key")"
    if meets "$key" "$current" "$recommended"; then
        return 0
    fi
    if ! recorded_value "$key" >/dev/null; then
        printf '%s\t%s\n' "$key" "$current" >>"$STATE_FILE"
    fi
    printf '%s\n' "$recommended" >"$(key_path "$key")" || die "cannot write $(key_path "$key")"
    echo "set $key = $recommended (was $current)"
}

# The file for /etc/sysctl.d: the tuning file with each key we did not raise commented out,
# so systemd-sysctl at boot neither lowers a higher value nor errors on a missing key.
render_installed() {
    local source="$1" line key reason
    echo "# Installed by aiocr tuning/apply.sh from tuning/sysctl.d/$(basename "$source")."
    echo "# Keys the host already had at or above the recommendation are commented out."
    while IFS= read -r line || [ -n "$line" ]; do
        key="$(printf '%s\n' "$line" | sed -n -e 's/#.*//' -e 's/^[[:space:]]*\([a-z0-9_.-]*\)[[:space:]]*=.*/\1/p')"
        if [ -z "$key" ]; then
            printf '%s\n' "$line"
        elif [ ! -f "$(key_path "$key")" ]; then
            printf '# %s   (skipped: not on this kernel)\n' "$line"
        elif recorded_value "$key" >/dev/null; then
            printf '%s\n' "$line"
        else
            reason="this host already has $(current_value "$key")"
            printf '# %s   (not applied: %s)\n' "$line" "$reason"
        fi
    done <"$source"
}

install_file() {
    local content_file="$1" target="$2"
    mkdir -p "$(dirname "$target")" || die "cannot create $(dirname "$target")"
    if [ -f "$target" ] && cmp -s "$content_file" "$target"; then
        echo "unchanged: $target"
        rm -f "$content_file"
        return 0
    fi
    chmod 0644 "$content_file"
    mv "$content_file" "$target" || die "cannot write $target"
    echo "installed: $target"
}

apply() {
    local role="$1" key recommended name rendered
    mkdir -p "$STATE_DIR" || die "cannot create $STATE_DIR (run as root?)"
    touch "$STATE_FILE" || die "cannot write $STATE_FILE (run as root?)"
    while IFS=$'\t' read -r key recommended; do
        if [ ! -f "$(key_path "$key")" ]; then
            echo "skipped $key: not on this kernel"
            continue
        fi
        raise_key "$key" "$recommended"
    done < <(role_settings "$role")
    mkdir -p "$ETC_DIR/sysctl.d" || die "cannot create $ETC_DIR/sysctl.d"
    for name in $(role_files "$role"); do
        rendered="$(mktemp "$ETC_DIR/sysctl.d/.aiocr.XXXXXX")"
        render_installed "$TUNING_DIR/sysctl.d/$name" >"$rendered"
        install_file "$rendered" "$ETC_DIR/sysctl.d/$name"
    done
    mkdir -p "$ETC_DIR/security/limits.d" || die "cannot create $ETC_DIR/security/limits.d"
    rendered="$(mktemp "$ETC_DIR/security/limits.d/.aiocr.XXXXXX")"
    cp "$TUNING_DIR/limits.d/$LIMITS_FILE" "$rendered"
    install_file "$rendered" "$ETC_DIR/security/limits.d/$LIMITS_FILE"
    echo "apply.sh: done; new limits apply at the next login; the service uses aiocr.service"
}

revert() {
    local key previous target
    if [ -f "$STATE_FILE" ]; then
        while IFS=$'\t' read -r key previous; do
            [ -n "$key" ] || continue
            if [ -f "$(key_path "$key")" ]; then
                printf '%s\n' "$previous" >"$(key_path "$key")" || die "cannot write $(key_path "$key")"
                echo "restored $key = $previous"
            else
                echo "skipped $key: not on this kernel"
            fi
        done <"$STATE_FILE"
        rm -f "$STATE_FILE"
        rmdir "$STATE_DIR" 2>/dev/null || true
    fi
    for target in "$ETC_DIR/sysctl.d/$SERVER_FILE" "$ETC_DIR/sysctl.d/$LOADGEN_FILE" \
        "$ETC_DIR/security/limits.d/$LIMITS_FILE"; do
        if [ -f "$target" ]; then
            rm -f "$target" || die "cannot remove $target"
            echo "removed: $target"
        fi
    done
    echo "apply.sh: reverted"
}

main() {
    local mode="" role="server"
    while [ $# -gt 0 ]; do
        case "$1" in
            --check | --apply | --revert) mode="$1" ;;
            --role)
                [ $# -ge 2 ] || usage
                role="$2"
                shift
                ;;
            --role=*) role="${1#--role=}" ;;
            *) usage ;;
        esac
        shift
    done
    role_files "$role" >/dev/null
    [ -d "$PROC_SYS" ] || die "$PROC_SYS does not exist"
    case "$mode" in
        --check) check "$role" ;;
        --apply) apply "$role" ;;
        --revert) revert ;;
        *) usage ;;
    esac
}

main "$@"
