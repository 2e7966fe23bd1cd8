// The ticket list (templates/tickets/ticket_list.html): "select every ticket on this page",
// and how many are selected. Without JavaScript each box is ticked by hand.
(function () {
  "use strict";
  const pageBox = document.getElementById("select-page");
  const count = document.getElementById("selected-count");
  if (!pageBox || !count) return; // no bulk action on offer: nothing to count
  const boxes = Array.from(document.querySelectorAll('input[name="ids"]'));
  const across = document.getElementById("select-across");

  function update() {
    const ticked = boxes.filter((box) => box.checked).length;
    pageBox.checked = ticked === boxes.length;
    pageBox.indeterminate = ticked > 0 && ticked < boxes.length;
    count.textContent = across && across.checked ? "All matching tickets selected" : `${ticked} selected`;
  }

  pageBox.hidden = false;
  pageBox.addEventListener("change", () => {
    boxes.forEach((box) => {
      box.checked = pageBox.checked;
    });
    update();
  });
  boxes.forEach((box) => box.addEventListener("change", update));
  if (across) across.addEventListener("change", update);
})();
