// pokedemo's page script. Gradio draws a plotly figure from its data and layout only, so two things
// are done here: (1) a map's fine-tuning snapshots, kept in layout.meta.frames, are handed to plotly
// (the slider under the student's map animates between them); (2) hovering a point shows its picture
// (the point's customdata, a small inline PNG).
(function () {
  function pictureBox() {
    let box = document.getElementById("hover-picture");
    if (!box) {
      box = document.createElement("div");
      box.id = "hover-picture";
      box.appendChild(document.createElement("img"));
      document.body.appendChild(box);
    }
    return box;
  }
  function wire(plot) {
    const Plotly = window.Plotly;
    if (!Plotly || !plot.layout || !plot.on) return;
    const meta = plot.layout.meta;
    const key = meta && meta.frames ? JSON.stringify(meta.frames.map((f) => f.name)) + plot.data.length +
      String(plot.data.length && plot.data[0].x && plot.data[0].x[0]) : "";
    if (plot.dataset.pokedemoFrames !== key) {
      plot.dataset.pokedemoFrames = key;
      const old = (plot._transitionData && plot._transitionData._frames) || [];
      Promise.resolve(old.length ? Plotly.deleteFrames(plot) : null).then(() => {
        if (meta && meta.frames) Plotly.addFrames(plot, meta.frames);
      });
    }
    if (plot._pokedemoHover === plot._ev) return;  // the listeners of this plotly instance are in place
    plot._pokedemoHover = plot._ev;
    plot.on("plotly_hover", (event) => {
      const point = event.points && event.points[0];
      if (!point || !point.customdata) return;
      const box = pictureBox();
      box.firstChild.src = point.customdata;
      const e = event.event || {clientX: 0, clientY: 0};
      box.style.left = Math.min(e.clientX + 16, window.innerWidth - 110) + "px";
      box.style.top = Math.max(e.clientY - 110, 4) + "px";
      box.style.display = "block";
    });
    plot.on("plotly_unhover", () => { pictureBox().style.display = "none"; });
  }
  setInterval(() => document.querySelectorAll(".js-plotly-plot").forEach(wire), 400);
})();
