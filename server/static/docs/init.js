// Swagger UI for /docs, from the swagger-ui-bundle package's files (no CDN, no inline script: the
// page's CSP allows scripts from this server only). No top bar: the schema is this server's own.
"use strict";
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
