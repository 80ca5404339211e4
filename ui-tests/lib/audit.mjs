// In-browser audits: accessible names (Chromium's own accessibility tree),
// WCAG AA text contrast, visible focus, and horizontal overflow.

const INTERACTIVE = new Set([
  "button", "link", "textbox", "searchbox", "combobox", "checkbox", "switch", "radio",
  "listbox", "option", "slider", "spinbutton", "tab", "menuitem", "img", "table", "dialog",
]);

/** Interactive nodes (and images, tables, dialogs) without an accessible name. */
export async function unnamedControls(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = await cdp.send("Accessibility.getFullAXTree");
    return nodes
      .filter((n) => !n.ignored && INTERACTIVE.has(n.role?.value) && !String(n.name?.value ?? "").trim())
      .map((n) => `${n.role.value} (backend node ${n.backendDOMNodeId})`);
  } finally {
    await cdp.detach();
  }
}

/** Every visible text whose contrast with its background is below AA. */
export function contrastFailures(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return null;
      const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
      return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
    };
    const over = (top, bottom) => ({
      r: top.r * top.a + bottom.r * (1 - top.a),
      g: top.g * top.a + bottom.g * (1 - top.a),
      b: top.b * top.a + bottom.b * (1 - top.a),
      a: 1,
    });
    const lum = ({ r, g, b }) => {
      const f = (v) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c && c.a > 0) {
          layers.push(c);
          if (c.a >= 1) break;
        }
      }
      let bg = { r: 255, g: 255, b: 255, a: 1 };
      for (const l of layers.reverse()) bg = over(l, bg);
      return bg;
    };
    const failures = [];
    const all = document.querySelectorAll("body *");
    for (const el of all) {
      const hasText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!hasText) continue;
      if (el.closest(".visually-hidden, :disabled, [hidden], option, noscript, title")) continue;
      if (el.closest("dialog:not([open])")) continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0 || !el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
      const cs = getComputedStyle(el);
      const fgRaw = parse(el instanceof SVGElement ? cs.fill : cs.color);
      if (!fgRaw) continue;
      const bg = background(el);
      const fg = over(fgRaw, bg);
      const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
      const ratio = (hi + 0.05) / (lo + 0.05);
      const size = parseFloat(cs.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(cs.fontWeight) >= 700);
      const need = large ? 3 : 4.5;
      if (ratio < need) failures.push(`${ratio.toFixed(2)} < ${need}: <${el.tagName.toLowerCase()} class="${el.getAttribute("class") ?? ""}"> "${el.textContent.trim().slice(0, 40)}"`);
    }
    return failures;
  });
}

/** Tabs `n` times; returns the focused elements that showed no focus outline. */
export async function focusWithoutOutline(page, n) {
  const bad = [];
  for (let i = 0; i < n; i += 1) {
    await page.keyboard.press("Tab");
    const r = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const cs = getComputedStyle(el);
      return { what: `<${el.tagName.toLowerCase()}> ${(el.getAttribute("aria-label") || el.textContent || el.id || "").trim().slice(0, 30)}`, style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
    });
    if (r && (r.style === "none" || r.width < 2)) bad.push(r.what);
  }
  return bad;
}

/** Whether the page scrolls sideways. */
export const overflowsSideways = (page) => page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
