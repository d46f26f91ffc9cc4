"""The HTML page of `autodrive show --html` carries the build's audit: flags, rows per
config and side, videos per side, and the audit's plots (issue 25: the page shows the
aggregates)."""

from __future__ import annotations

from tests.builders.real_builds import autodrive, tiny_recipe


def test_the_page_shows_the_audit_aggregates_and_plots(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build = tmp_path / "build"
    code, text = autodrive(capsys, "build", recipe)
    assert code == 0 and "[audit]" in text, text  # build ends with the audit
    page = tmp_path / "pages" / "mcq.html"
    assert autodrive(capsys, "show", build, "mcq", "--html", page)[0] == 0
    html = page.read_text()
    assert 'id="audit"' in html and "answerable without the video" in html
    assert "<td>mcq</td><td>train</td>" in html and "hours of source" in html
    assert "<img" not in html  # build's audit writes no plots by default
    assert autodrive(capsys, "audit", build)[0] == 0  # the command writes them
    assert autodrive(capsys, "show", build, "mcq", "--html", page)[0] == 0
    html = page.read_text()
    assert html.count('<img class="plot" src="../build/audit/') == 3
