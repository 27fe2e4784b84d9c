# Sourced by bench/milter_instructions.sh and bench/auth_instructions.sh:
# sums callgrind's per-thread counts (--separate-threads=yes files
# cg.<pid>.1-<thread> in a directory) and prints instructions per message,
# then each thread's share, named by the outermost function of ours or
# tokio's it runs (tokio's blocking pool threads run workers too, after
# block_in_place).
# Usage: callgrind_per_message DIR MESSAGES LABEL   (LABEL starts the first line)
callgrind_per_message() {
  local dir=$1 sent=$2 label=$3 total=0 f n what
  : >"$dir/threads"
  for f in "$dir"/cg.*.1-*; do
    n=$(grep -m1 -E '^(summary|totals):' "$f" | awk '{print $2}')
    [ -n "$n" ] && [ "$n" -gt 0 ] || continue
    total=$((total + n))
    what=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
      grep -oE 'mxguard_store::writer::run|tokio::runtime::scheduler::multi_thread::worker::run|tokio::runtime::blocking::pool::Inner::run|mxguard_net::memory::release_soon|std::rt::lang_start' |
      head -1)
    echo "$n ${what:-other} ${f##*/}" >>"$dir/threads"
  done
  echo "${label}messages=$sent instructions_per_message=$((total / sent))"
  sort -rn "$dir/threads" | awk -v m="$sent" '{printf "  %-58s %8d per message  (%s)\n", $2, $1 / m, $3}'
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP" && cp "$dir"/cg.*.1-* "$KEEP"/ && echo "callgrind files kept in $KEEP"
  fi
}
