"""axe-core's WCAG 2.1 AA colour-contrast rule, run in a Playwright page (axe-core is vendored under
``vendor/``, MPL-2.0; tests only, never served)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

_CONTRAST = """async () => {
    const r = await axe.run(document, { runOnly: { type: 'rule', values: ['color-contrast'] },
                                        resultTypes: ['violations'] });
    return r.violations.flatMap(v => v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary));
}"""


def contrast_failures(page: Any) -> list[str]:
    """Every element of the page that fails AA contrast, with axe's reason (empty: none)."""
    page.add_script_tag(path=str(AXE))
    return list(page.evaluate(_CONTRAST))
