setInterval(async () => {
  try {
    const r = await fetch(location.href, { cache: "no-store" });
    if (!r.ok) return;
    const page = new DOMParser().parseFromString(await r.text(), "text/html");
    const fresh = page.querySelector("main");
    if (fresh) document.querySelector("main").replaceWith(fresh);
  } catch (e) {}
}, 15000);
