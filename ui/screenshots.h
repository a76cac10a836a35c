// Headless documentation screenshots: opens a dump, trains a quick setting and
// renders the main window and every chart to PNG (run with QT_QPA_PLATFORM=offscreen;
// scripts/render_screenshots.sh). Returns a process exit code.
#pragma once

#include <QString>

namespace kvq::ui {

// dump: file to open; dir: output folder (created). Training uses the "fast"
// preset with C = 256 on at most four layers so it takes seconds, not minutes.
int renderScreenshots(const QString& dump, const QString& dir);

}  // namespace kvq::ui
