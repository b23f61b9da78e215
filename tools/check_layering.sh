#!/usr/bin/env bash
# Enforces the module dependency rule (STYLE.md section 1): pure modules include no I/O headers,
# and no module includes one further down the table.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() {  # check DIR REGEX WHY
  local hits
  hits=$(grep -rnE "$2" "$1" --include='*.h' --include='*.cc' 2>/dev/null || true)
  if [ -n "$hits" ]; then
    echo "layering: $1/ $3:"; echo "$hits"; fail=1
  fi
}
check smtp   '#include *[<"](liburing|openssl/|sys/socket|netinet/|arpa/|fcntl|unistd)' "must stay pure (no I/O headers)"
check policy '#include *[<"](liburing|openssl/|sys/socket|netinet/|arpa/|fcntl|unistd)' "must stay pure (no I/O headers)"
check core   '#include *"(policy|smtp|tls|net)/' "may only include core/"
check policy '#include *"(smtp|tls|net)/' "may only include core/ and policy/"
check smtp   '#include *"(tls|net)/' "may not include tls/ or net/"
check tls    '#include *"(smtp|net|policy)/' "may not include smtp/, net/ or policy/"
check core   '#include *[<"](liburing|openssl/)' "may not use liburing or OpenSSL"
[ $fail = 0 ] && echo "layering ok"
exit $fail
