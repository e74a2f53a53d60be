#!/bin/bash
# Join the shards' CSV reports into one table (one header line): merge_reports.sh REPORT_DIR OUTPUT.csv
set -euo pipefail
reports=("$1"/*.csv)
{ head -n 1 "${reports[0]}"; for report in "${reports[@]}"; do tail -n +2 "$report"; done; } > "$2"
echo "$(($(wc -l < "$2") - 1)) patients in $2"
