// The lessons' maths on the site (docs/site/build.py copies this file to assets/mathjax/site.js; mkdocs.yml's
// custom_mathjax_url loads it on every lesson page): MathJax 3's settings for the $...$ that Jupyter writes,
// then MathJax itself, from the django-static-mathjax package copied beside this file (no CDN).
window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\(", "\\)"]], displayMath: [["$$", "$$"], ["\\[", "\\]"]]},
};
(function () {
  var script = document.createElement("script");
  script.src = document.currentScript.src.replace(/site\.js(\?.*)?$/, "tex-chtml.js");
  script.async = true;
  document.head.appendChild(script);
})();
