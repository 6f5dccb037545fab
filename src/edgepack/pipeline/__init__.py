"""The build pipeline: a target's stages as cached steps, run by one executor for one target or many.

| module     | what |
|------------|------|
| ``steps``    | Step (name, inputs -> key, action, needs, phase), StepCache (stamps, locks by key) |
| ``context``  | Build: the target, project, runner and options every stage takes; bytecode; stamps |
| ``plan``     | a target's steps: base, deps, model (+ export, quantize, validate), app, image, smoke |
| ``base``, ``deps``, ``model``, ``app``, ``image``, ``smoke`` | one module per stage |
| ``pip``      | the target's PyPI wheels (locked, from the package store) |
| ``docker``   | pure argv builders for docker/buildx; image inspection; the reproducible save |
| ``executor`` | the DAG scheduler (needs, phases, jobs, shared keys, failures per target) |
| ``parallel`` | one target or many: plan, preflight, execute (several images: one bake) |
| ``bake``     | the buildx bake file |
| ``report``   | build/<target>/report.json |
"""
