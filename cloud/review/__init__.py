"""Human review: the priority queue, browser console, typed feedback, verified labels, exports and reports."""
