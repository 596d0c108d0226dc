"""The course around the notebooks: the student edition (``student``: nbgrader's solution
regions cut out, ``make student``) and the check cells its blanks are graded by (``checks``)."""
