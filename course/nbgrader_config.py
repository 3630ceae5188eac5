"""nbgrader settings for the hmrlab collection.

Run nbgrader from this folder (`cd course && nbgrader autograde 00_tour`) or through `release.py`, which
loads this file. Each notebook is one assignment named after it (`00_tour`, `01_body_models`, ...).
"""

import os
from pathlib import Path

from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute

c = get_config()  # noqa: F821 (traitlets defines get_config when it runs this file)

c.CourseDirectory.course_id = "hmrlab"
# source/, release/, submitted/, autograded/, feedback/ and gradebook.db: generated, so under the ignored
# build/ folder unless a teacher keeps a real course elsewhere.
c.CourseDirectory.root = os.environ.get("HMRLAB_COURSE_ROOT") or str(
    Path(__file__).resolve().parent.parent / "build" / "course"
)
# nbgrader's default of 30 s per cell is too tight for a training cell on a busy CPU, even in quick mode.
c.Execute.timeout = 600


class ExecuteWithoutOutputWidgets(Execute):
    """nbgrader's executor without nbclient's imitation of JupyterLab's Output widget.

    That imitation can deadlock on cells that use ipywidgets' `interact` (the kernel idles, the client
    waits; see tools.notebook_runner); it hung an autograde of 03_wavelets here. Graded cells use no
    widgets, so a widget's outputs simply stay in its cell.
    """

    def on_comm_open_jupyter_widget(self, msg):
        return None


c.Autograde.autograde_preprocessors = [
    ExecuteWithoutOutputWidgets if step is Execute else step
    for step in Autograde.class_traits()["autograde_preprocessors"].default()
]
