// Headless documentation screenshots: opens a dump, trains a quick setting and
// renders the main window and every chart to PNG (run with QT_QPA_PLATFORM=offscreen;
// scripts/render_screenshots.sh). Returns a process exit code.
#pragma once

#include <QString>
#include <QStringList>

namespace kvq::ui {

// dump: file to open; dir: output folder (created). Training uses the "fast"
// preset with C = 2048 (K = 8: the paper's 3 bits) on at most four layers, shown at
// K = 6.
// On a dump with queries the attention charts are rendered too (the rate–distortion
// chart once per y axis); compare: a codebook file evaluated on the dump and drawn
// beside the training ("" = none); modelResults: `kvq ppl --json` reports opened in the Model
// impact view, rendered as model_impact.png and, with the window, model_impact_view.png.
int renderScreenshots(const QString& dump, const QString& dir, const QString& compare = {},
                      const QStringList& modelResults = {});

}  // namespace kvq::ui
