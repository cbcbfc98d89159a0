// Builds .dvc/plots/page.html, the page that `dvc plots show` and `dvc plots diff` fill (.dvc/config:
// plots.html_template), from page_template.html and the Vega, Vega-Lite and vega-embed builds that `npm ci`
// installed (each tarball checked against its sha512 in package-lock.json). DVC's own page loads them from a CDN;
// this one carries them inline, so it renders with no network wherever `dvc plots ... -o DIR` writes it.
// Run by `npm ci` (package.json: postinstall).
import { readFileSync, renameSync, writeFileSync } from "node:fs";
const here = new URL(".", import.meta.url);
const modules = new URL("../../node_modules/", here);  // npm ci installs the direct dependencies here
const MARKER = "<!-- VEGA_SCRIPTS -->";
// DVC fills the page with str.replace of each placeholder: the template holds {plot_divs} and {refresh_tag} but not
// {scripts} (DVC's CDN tags), and no inlined script may contain any of them.
const PLACEHOLDERS = ["{scripts}", "{plot_divs}", "{refresh_tag}"];
const BUILDS = [["vega", "build/vega.min.js"], ["vega-lite", "build/vega-lite.min.js"],
                ["vega-embed", "build/vega-embed.min.js"]];
// DVC's plot divs call vegaEmbed(el, spec) without options: draw SVG (each mark an element, its text searchable;
// the offline test counts them) and put an error in the chart's place rather than leave it blank.
const DEFAULTS = `window.vegaEmbed = (embed => (el, spec, opts) => embed(el, spec, { renderer: "svg", ...opts })
    .catch(err => { document.querySelector(el).append("vega-embed could not draw this chart: " + err); }))(window.vegaEmbed);`;

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(2);
}

const template = readFileSync(new URL("page_template.html", here), "utf8");
if (template.split(MARKER).length !== 2) fail(`page_template.html must hold ${MARKER} exactly once`);
if (template.includes("{scripts}")) fail("page_template.html must not hold {scripts} (DVC's CDN script tags)");

const versions = [];
const scripts = BUILDS.map(([name, file]) => {
  const meta = JSON.parse(readFileSync(new URL(`${name}/package.json`, modules), "utf8"));
  const js = readFileSync(new URL(`${name}/${file}`, modules), "utf8");
  if (/<\/script|<!--/i.test(js)) fail(`${name}/${file} holds '</script' or '<!--': it cannot be inlined as is`);
  const placeholder = PLACEHOLDERS.find((p) => js.includes(p));
  if (placeholder) fail(`${name}/${file} holds DVC's placeholder ${placeholder}: DVC would fill it`);
  versions.push(`${name} ${meta.version}`);
  return `<script>/* ${name} ${meta.version} (${meta.license}), ${file} */\n${js}\n</script>`;
});
scripts.push(`<script>\n${DEFAULTS}\n</script>`);

const page = new URL("page.html", here);
const tmp = new URL(".page.html.tmp", here);
writeFileSync(tmp, template.replace(MARKER, () => scripts.join("\n    ")));
renameSync(tmp, page);
console.log(`wrote ${page.pathname}: ${versions.join(", ")} inline`);
