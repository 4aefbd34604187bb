#!/usr/bin/env bash
# Docs at 1280 px in headless Chromium: lists, per page, every code block that scrolls and
# every element wider than its box (not run by CI: its machine has no Chromium).
# Usage: mkdocs build --site-dir /tmp/site && bash .ci/check_docs_width.sh /tmp/site
set -euo pipefail
site=${1:-site}
probe='<script>addEventListener("load",()=>{const o=[];for(const e of document.querySelectorAll(
"pre,table,p,li,img"))if(e.scrollWidth>e.clientWidth+1)o.push(e.tagName+" +"+(e.scrollWidth-
e.clientWidth)+"px: "+e.textContent.slice(0,60).replace(/\n/g," "));const d=document.documentElement;
o.push("page "+d.scrollWidth+"/"+d.clientWidth);const r=document.createElement("div");
r.id="width-probe";r.textContent=o.join(" || ");document.body.appendChild(r)})</script>'
find "$site" -name index.html ! -path "*/404/*" | sort | while read -r page; do
  probed=$(mktemp --suffix=.html -p "$(dirname "$page")")
  { cat "$page"; echo "$probe"; } >"$probed"
  found=$(chromium --headless --no-sandbox --disable-gpu --window-size=1280,900 \
    --virtual-time-budget=3000 --dump-dom "file://$probed" 2>/dev/null |
    grep -o 'id="width-probe">[^<]*' | sed 's/id="width-probe">//')
  rm -f "$probed"
  echo "${page#"$site"/}: $found"
done
