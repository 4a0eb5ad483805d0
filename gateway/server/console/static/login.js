// Sign-in: the form is posted with fetch() so that the browser sends this page's Origin
// (a plain form post from a page with Referrer-Policy: no-referrer says "Origin: null", which
// the server refuses as a possible cross-site sign-in).

const form = document.getElementById("signin");
const error = document.getElementById("signin-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      cache: "no-store",
    });
    if (response.ok && response.redirected) {
      window.location.assign("/console/");
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const message = page.querySelector("p.error:not([hidden])");
    error.textContent = message ? message.textContent : `Sign-in failed (HTTP ${response.status}).`;
    error.hidden = false;
  } catch (exc) {
    error.textContent = `Sign-in failed: ${exc.message}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});
