# Output helpers of Slipway's buildpacks: "-----> Heading", 7-space indented detail, and the
# time each step took. Sourced by bin/compile.

step() {
    echo "-----> $*"
    _step_started=$(date +%s%N)
}

# After a step: "       done in 1.2 s".
step_done() {
    local ms=$(( ($(date +%s%N) - _step_started) / 1000000 ))
    printf '       done in %d.%d s\n' $((ms / 1000)) $(((ms % 1000) / 100))
}

# Indent a command's output as detail lines, line by line as it comes.
indent() {
    sed -u 's/^/       /'
}

# Stop the build with a one-line reason: shown here, and the push's "Push rejected: REASON".
fail() {
    echo " !     $*"
    if [ -n "${SLIPWAY_FAILURE_FILE:-}" ]; then echo "$*" > "$SLIPWAY_FAILURE_FILE"; fi
    exit 1
}
