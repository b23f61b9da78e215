# Sourced by tools/fresh-machine-test.sh and tools/deb-install-test.sh.
# The Debian mirror (and security mirror) the host's apt uses, from sources.list (one-line form)
# and sources.list.d/*.sources (deb822 form).
sources_uri() {  # sources_uri SUITE: the first deb URI that serves SUITE
  local suite=$1
  {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while (i <= NF && $i !~ /\]$/) i++;
        if ($2 ~ /^\[/) i++; if ($(i + 1) == s) print $i }'
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
      awk -v s="$suite" 'BEGIN { RS = ""; FS = "\n" } {
        deb = 0; uri = ""; hit = 0
        for (j = 1; j <= NF; j++) {
          split($j, kv, ":[ \t]*"); key = kv[1]; val = substr($j, length(key) + 2)
          gsub(/^[ \t]+/, "", val)
          if (key == "Types" && val ~ /(^| )deb( |$)/) deb = 1
          if (key == "URIs") { split(val, u, " "); uri = u[1] }
          if (key == "Suites") { n = split(val, t, " "); for (k = 1; k <= n; k++) if (t[k] == s) hit = 1 }
        }
        if (deb && hit && uri != "") print uri }'
  } | head -1
}
