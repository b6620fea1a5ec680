// The annotation page from the keyboard: 1-9 pick a label and save it, Enter saves the one selected
// (the suggestion, when there is one), n / right arrow and p / left arrow move without saving.
document.addEventListener("keydown", (event) => {
  const form = document.getElementById("annotate-form");
  if (!form || event.ctrlKey || event.metaKey || event.altKey || event.target.matches("input[type=text]")) return;
  if (/^[1-9]$/.test(event.key)) {
    const choice = form.querySelector(`input[name=label][data-key="${event.key}"]`);
    if (choice) { choice.checked = true; form.requestSubmit(); }
  } else if (event.key === "Enter") {
    if (form.querySelector("input[name=label]:checked")) form.requestSubmit();
  } else if (event.key === "n" || event.key === "ArrowRight") {
    window.location.href = form.dataset.next;
  } else if ((event.key === "p" || event.key === "ArrowLeft") && form.dataset.previous) {
    window.location.href = form.dataset.previous;
  }
});
