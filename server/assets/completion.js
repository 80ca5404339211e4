// Type-ahead completion for one field (actor, action, entity, recorded by):
// an ARIA 1.2 combobox whose options come from GET /activity/facets/{field}?prefix=.

import { get } from "./api.js";
import { h, newId, replace } from "./dom.js";
import { num } from "./format.js";

/**
 * `field`: facet field; `label`: visible label; `context()`: the other
 * filters as URLSearchParams; `onPick(value)`: a value was chosen;
 * `show(value)`: how an option shows its value (default: as it is).
 */
export function completion({ field, label, placeholder, context, onPick, show = (v) => v }) {
  const inputId = newId(`complete-${field}`);
  const listId = newId(`options-${field}`);
  const input = h("input", {
    id: inputId,
    type: "text",
    role: "combobox",
    autocomplete: "off",
    spellcheck: "false",
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": listId,
    placeholder,
  });
  const list = h("ul", { id: listId, role: "listbox", class: "options", "aria-label": `${label} suggestions`, hidden: true });
  const wrap = h("div", { class: `completion completion-${field}` },
    h("label", { for: inputId }, label), h("div", { class: "completion-box" }, input, list));

  let options = [];
  let active = -1;
  let timer = null;
  let controller = null;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function setActive(i) {
    active = i;
    list.querySelectorAll("[role=option]").forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    if (i >= 0) {
      const li = list.children[i];
      input.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function pick(value) {
    input.value = "";
    close();
    if (value) onPick(value);
  }

  async function suggest() {
    if (controller) controller.abort();
    controller = new AbortController();
    const q = context();
    q.set("limit", "8");
    if (input.value) q.set("prefix", input.value);
    let data;
    try {
      data = await get(`/activity/facets/${field}`, q, controller.signal);
    } catch (e) {
      if (e.name === "AbortError") return;
      replace(list, h("li", { class: "option-note" }, `No suggestions: ${e.message}`));
      list.hidden = false;
      return;
    }
    options = data.values;
    replace(list, options.length === 0
      ? h("li", { class: "option-note" }, input.value ? `No ${label.toLowerCase()} starts with “${input.value}”` : "No values")
      : options.map((o, i) => h("li", {
        id: `${listId}-${i}`,
        role: "option",
        "aria-selected": "false",
        onmousedown: (ev) => { ev.preventDefault(); pick(o.value); },
      }, h("span", { class: "option-value" }, show(o.value)), h("span", { class: "option-count" }, num(o.count)))));
    if (document.activeElement === input) {
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      setActive(-1);
    }
  }

  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(suggest, 120);
  });
  input.addEventListener("focus", () => suggest());
  input.addEventListener("blur", () => close());
  input.addEventListener("keydown", (ev) => {
    const open = !list.hidden && options.length > 0;
    if (ev.key === "ArrowDown") {
      ev.preventDefault();
      if (list.hidden) suggest();
      else if (open) setActive((active + 1) % options.length);
    } else if (ev.key === "ArrowUp" && open) {
      ev.preventDefault();
      setActive(active <= 0 ? options.length - 1 : active - 1);
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      pick(open && active >= 0 ? options[active].value : input.value.trim());
    } else if (ev.key === "Escape" && !list.hidden) {
      ev.preventDefault();
      close();
    }
  });
  return wrap;
}
