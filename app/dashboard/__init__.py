"""A small web dashboard served at /dashboard: static HTML, JS modules and CSS, no build step.
The shell needs no key; the page asks for one and calls the JSON API with it."""
