"""Line control: verdicts in, exactly one line command per garment out, fail-safe on deadlines."""
