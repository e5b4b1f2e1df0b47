"""Lab code: training and data preparation that the runtime never imports."""
