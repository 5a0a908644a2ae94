"""Human review: the priority queue, the browser console, typed feedback, verified labels, exports and reports."""
