#!/usr/bin/env bash
# Prints N short harbour news stories as `streamlm.text` JSON lines, for the
# README's quick start: a domain the bootstrap corpus never saw, each story
# a few sentences long (the default quality filters want documents of at
# least 50 words and 5 sentences), and different enough from one another
# that dedup keeps them. Usage: scripts/demo_text.sh [N]   (default 60)
set -euo pipefail
n=${1:-60}
awk -v n="$n" 'BEGIN {
  split("Fishing boats|The ferry|A grain ship|Two tugboats|The coast guard cutter|A cargo vessel|The old schooner", who, "|")
  split("early in the morning|just before noon|late in the afternoon|after the evening tide|in thick fog|under a clear sky|during a light rain", when, "|")
  split("grain and timber|fresh fish and ice|coal for the winter|wine from the south|wool and leather|salt and spices|machine parts", cargo, "|")
  split("the harbour master|the dock workers|the customs office|the pilots on duty|the fish market|the town council|the lighthouse keeper", says, "|")
  for (i = 1; i <= n; i++) {
    a = who[i % 7 + 1]; b = when[int(i / 7) % 7 + 1]; c = cargo[int(i / 49) % 7 + 1]; d = says[(i * 3) % 7 + 1]
    printf "{\"text\": \"Harbour report %d. %s reached pier %d %s and unloaded %d tons of %s. ", i, a, i % 17 + 1, b, (i * 37) % 400 + 20, c
    printf "According to %s, the crew of %d sailors finished the work within %d hours. ", d, (i * 7) % 30 + 4, i % 9 + 2
    printf "The water in the basin was %d metres deep at the time, which is normal for the season. ", i % 6 + 5
    printf "Another %d ships are expected before the end of week %d, and the berths near the north wall have been cleared for them. ", (i * 11) % 14 + 2, i % 52 + 1
    printf "Prices at the market stayed near %d crowns for a crate of fish.\", \"id\": \"harbour-%d\"}\n", (i * 13) % 90 + 10, i
  }
}'
