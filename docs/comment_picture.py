"""Render the demo's sticky comment as GitHub shows it, into docs/comment.png (run by hand).

`make demo` prints the comment's Markdown; this runs the same demo, renders the last comment
with GitHub's own Markdown parser (cmark-gfm) and a GitHub-like stylesheet, and takes a
screenshot with headless Chromium (Debian: `apt-get install chromium fonts-noto-color-emoji`).
GitHub draws the trend charts with Mermaid; give `--mermaid PATH/mermaid.min.js` (from
`npm install mermaid`) to draw them too.

    .venv/bin/python docs/comment_picture.py [--mermaid node_modules/mermaid/dist/mermaid.min.js]
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import cmarkgfm
from cmarkgfm.cmark import Options

from bot import demo

OUT = Path(__file__).resolve().parent / "comment.png"
STYLE = """
body { font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif;
       color: #1f2328; background: #fff; margin: 0; padding: 16px; }
.box { border: 1px solid #d1d9e0; border-radius: 6px; max-width: 860px; }
.head { background: #f6f8fa; border-bottom: 1px solid #d1d9e0; padding: 8px 16px;
        border-radius: 6px 6px 0 0; color: #59636e; }
.head b { color: #1f2328; }
.body { padding: 8px 16px 16px; }
h3 { font-size: 1.25em; margin: 16px 0 8px; } h4 { font-size: 1em; margin: 16px 0 8px; }
table { border-collapse: collapse; margin: 8px 0 16px; display: block; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
tr:nth-child(2n) { background: #f6f8fa; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; background: #eff1f3;
       padding: .2em .4em; border-radius: 6px; }
pre { background: #f6f8fa; padding: 16px; border-radius: 6px; overflow: auto; }
pre code { background: none; padding: 0; }
blockquote { margin: 0 0 16px; padding: 0 1em; color: #59636e; border-left: .25em solid #d1d9e0; }
details summary { cursor: pointer; color: #0969da; margin: 4px 0; }
"""


def demo_comment() -> str:
    """The Markdown of the last comment `mlgate demo` printed."""
    lines: list[str] = []
    if demo.run(lines.append) != 0:
        sys.exit("mlgate demo failed; run `make demo` to see why")
    starts = [i for i, line in enumerate(lines) if "mlgate comment (id" in line]
    body: list[str] = []
    for line in lines[starts[-1] + 2 :]:
        if line.startswith("mlgate/quality:"):
            break
        body.append(line)
    return textwrap.dedent("\n".join(body)).strip() + "\n"


def main() -> None:
    mermaid = Path(sys.argv[2]) if sys.argv[1:2] == ["--mermaid"] else None
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium on PATH: apt-get install chromium")
    html = cmarkgfm.github_flavored_markdown_to_html(
        demo_comment(), options=Options.CMARK_OPT_UNSAFE
    )
    script = ""
    if mermaid is not None:
        # cmark-gfm writes a ```mermaid block as <pre lang="mermaid">; Mermaid draws class=mermaid.
        html = re.sub(
            r'<pre lang="mermaid"><code>(.*?)</code></pre>',
            r'<pre class="mermaid">\1</pre>',
            html,
            flags=re.S,
        )
        script = (
            f"<script src={mermaid.resolve().as_uri()}></script>"
            "<script>mermaid.initialize({startOnLoad: true});</script>"
        )
    page = (
        f"<!doctype html><meta charset=utf-8><style>{STYLE}</style><div class=box>"
        "<div class=head><b>mlgate</b> <span>bot</span> commented</div>"
        f"<div class=body>{html}</div></div>{script}"
    )
    with tempfile.TemporaryDirectory() as work:
        index = Path(work) / "comment.html"
        index.write_text(page)
        subprocess.run(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                f"--user-data-dir={work}/profile", f"--screenshot={OUT}",
                "--window-size=900,1350", "--virtual-time-budget=5000", index.as_uri(),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    print(f"written: {OUT}")


if __name__ == "__main__":
    main()
