"""Course tooling, kept apart from the teaching modules. Nothing here is needed to follow a notebook.

* :mod:`~lora_edu.tools.registry`  - the notebook registry: notebook -> modules, explorers, exercises, app section
* :mod:`~lora_edu.tools.app`       - ``make app``: every explorer on one voila page
* :mod:`~lora_edu.tools.slides`    - ``make slides``: offline reveal.js slides from the notebooks
* :mod:`~lora_edu.tools.figures`   - ``make figures``: every file in ``figures/``
* :mod:`~lora_edu.tools.bench`     - ``make bench``: performance ratios measured side by side
* :mod:`~lora_edu.tools.check_env` - ``make check-env`` / ``python -m lora_edu.check_env``
* :mod:`~lora_edu.tools.browser`   - JupyterLab and voila in headless Chromium (browser tests, bench)

Paths (``notebooks/``, ``figures/``, ``build/``) are relative to the working directory or passed in,
never derived from this package's location, which after ``pip install`` is site-packages.
"""
