#!/usr/bin/env bash
# Rebuild the eval indexes from scratch (embedding cache kept), print the tables and write them into
# docs/eval.md (its <!-- kb eval SET --> blocks; with KB_MODEL set, only printed).
# Usage: [KB_MODEL=e5static] bench/eval.sh [policies] [laws]
#        (default: both sets with the default model; laws takes ~30 min to embed on 2 cores)
# Indexes go to bench/out/idx-<set>[-<model>]; data comes from $KB_SHARED (default ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${KB_SHARED:-../shared}"
kb=".venv/bin/kb"
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(policies laws)
for set in "${sets[@]}"; do
    index="bench/out/idx-$set${KB_MODEL:+-$KB_MODEL}"
    extra=()
    [ -n "${KB_MODEL:-}" ] && extra+=(--model "$KB_MODEL")
    [ "$set" = policies ] && extra+=(corpus)  # the demo report rides along, as in the README
    echo "== $set: build"
    "$kb" ingest --rebuild "$shared/corpus/$set" "${extra[@]}" --index "$index" --quiet
    du -sh "$index/builds/$(cat "$index/CURRENT")" "$index/embeddings.sqlite"
    echo "== $set: eval"
    write=(--write docs/eval.md)
    [ -n "${KB_MODEL:-}" ] && write=()  # docs/eval.md holds the default model's blocks
    "$kb" eval --index "$index" --all-modes \
        --queries "$shared/eval/$set/queries.jsonl" --qrels "$shared/eval/$set/qrels.tsv" \
        --evidence "$shared/eval/$set/evidence.jsonl" "${write[@]}" 2>/dev/null
done
