"""Static checks of the dashboard page (www/) that need no browser: nothing
loaded from another origin, nothing a strict Content-Security-Policy
(default-src 'self') would block, no HTML built from strings, every form
control labelled, the pt-BR language declared."""
import os
import re
from html.parser import HTMLParser

from harness import ROOT

WWW = os.path.join(ROOT, "www")


def files(ext):
    out = []
    for d, _, names in os.walk(WWW):
        out += [os.path.join(d, n) for n in names if n.endswith(ext)]
    assert out, f"no {ext} files in www/"
    return sorted(out)


def read(p):
    with open(p, encoding="utf-8") as f:
        return f.read()


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.labels_for = set()
        self.inline_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "label" and a.get("for"):
            self.labels_for.add(a["for"])
        self._script = tag == "script" and "src" not in a

    def handle_data(self, data):
        if getattr(self, "_script", False) and data.strip():
            self.inline_script = True

    def handle_endtag(self, tag):
        self._script = False


def parse(p):
    pg = Page()
    pg.feed(read(p))
    return pg


def test_www_nothing_from_another_origin():
    for p in files(".html") + files(".css") + files(".js"):
        text = read(p)
        for m in re.finditer(r"(?:src|href)\s*=\s*[\"'](?:https?:)?//|url\(\s*[\"']?(?:https?:)?//|"
                             r"import[^;]*from\s*[\"'](?:https?:)?//", text):
            raise AssertionError(f"{p}: loads from another origin: {m.group(0)}")


def test_www_strict_csp_compatible():
    for p in files(".html"):
        pg = parse(p)
        assert not pg.inline_script, f"{p}: inline <script>"
        for tag, a in pg.tags:
            assert tag != "style", f"{p}: <style> element"
            assert "style" not in a, f"{p}: style= attribute on <{tag}>"
            bad = [k for k in a if k.startswith("on")]
            assert not bad, f"{p}: inline handler {bad} on <{tag}>"
            if tag == "script":
                assert a.get("type") == "module", f"{p}: <script> that is not a module"
    for p in files(".js"):
        text = read(p)
        for pat in (r"\beval\s*\(", r"new\s+Function\s*\(", r"setAttribute\(\s*['\"]style['\"]",
                    r"setTimeout\(\s*['\"`]", r"setInterval\(\s*['\"`]"):
            assert not re.search(pat, text), f"{p}: {pat} is blocked by the CSP"


def test_www_never_builds_html_from_strings():
    for p in files(".js"):
        text = read(p)
        for pat in (r"\.innerHTML\b", r"\.outerHTML\b", r"insertAdjacentHTML", r"document\.write",
                    r"createContextualFragment", r"DOMParser"):
            assert not re.search(pat, text), f"{p}: {pat}"


def test_www_form_controls_are_labelled_and_language_is_pt_br():
    p = os.path.join(WWW, "index.html")
    text = read(p)
    assert re.search(r"<html[^>]*\blang=\"pt-BR\"", text)
    pg = parse(p)
    for tag, a in pg.tags:
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            assert a.get("id") in pg.labels_for or "aria-label" in a, f"unlabelled <{tag} id={a.get('id')}>"
        if tag == "button":
            assert a.get("type") in ("button", "submit"), f"<button id={a.get('id')}> without type"
