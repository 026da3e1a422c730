"""labkit.course: the course's own machinery, around the fine-tuning core.

- `labkit.course.claims`        `claim()` and `record()`: a lesson's checked claims and headline numbers
- `labkit.course.check`         exercises that check themselves: `check("02.1", answer, **measured)`
- `labkit.course.lessons`       the training runs several lessons share (lesson 01's tone, lesson 02's recipes)
- `labkit.course.runner`        `make course`: every lesson headless, a report for instructors
- `labkit.course.lesson_times`  each lesson's minutes per machine kind, and their prediction on this machine
- `labkit.course.doctor`        `labkit doctor`: is this machine ready, and how long each lesson takes here
- `labkit.course.student`       `make student`: learners' copies, worked solutions replaced by stubs
- `labkit.course.install`       the lessons' first cell on Colab: install what is missing, keep Colab's torch
- `labkit.course.timing`        time to first token and decode speed, PyTorch and onnxruntime-genai alike
- `labkit.course.memory`        peak and resident memory, measured
- `labkit.course.parallel`      data parallelism: run a command on N processes (torchrun), time one all-reduce
"""
