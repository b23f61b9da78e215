#!/usr/bin/env bash
# clang-format check (STYLE.md section 10): every tracked C++ file must be formatted as
# .clang-format says. Fix with: clang-format -i $(git ls-files '*.cc' '*.h')
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null 2>&1; then
  echo "format: clang-format not installed (tools/install-deps.sh installs it)"; exit 1
fi
bad=()
while IFS= read -r f; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done < <(git ls-files '*.cc' '*.h' 2>/dev/null || find . -name '*.cc' -o -name '*.h')
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: not clang-formatted:"; printf '  %s\n' "${bad[@]}"; exit 1
fi
echo "format ok"
