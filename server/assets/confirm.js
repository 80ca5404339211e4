// A modal confirmation (<dialog>): resolves true when the user confirms.

import { h } from "./dom.js";

export function confirmDialog({ title, text, confirm, danger = true }) {
  return new Promise((resolve) => {
    const yes = h("button", { type: "button", class: danger ? "danger" : "primary" }, confirm);
    const no = h("button", { type: "button" }, "Cancel");
    const d = h("dialog", { class: "confirm", "aria-labelledby": "confirm-h", "aria-describedby": "confirm-text" },
      h("h2", { id: "confirm-h" }, title), h("p", { id: "confirm-text" }, text),
      h("div", { class: "actions" }, no, yes));
    const back = document.activeElement;
    let answer = false;
    yes.addEventListener("click", () => { answer = true; d.close(); });
    no.addEventListener("click", () => d.close());
    d.addEventListener("close", () => {
      d.remove();
      if (back && back.isConnected) back.focus();
      resolve(answer);
    });
    document.body.append(d);
    d.showModal();
    no.focus();
  });
}
