// Shared by every page: a confirmation before destructive buttons; the CSRF token for fetch.
"use strict";
window.csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;
document.addEventListener("click", (ev) => {
  const b = ev.target.closest('button[value="delete"], button[value="reset"]');
  if (b && !window.confirm(document.documentElement.lang === "ru" ? "Точно?" : "Are you sure?")) ev.preventDefault();
});
