"""Preparation of raw exams: co-registration to T1ce, 1 mm resampling, brain extraction, and the way back."""
