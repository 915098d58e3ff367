"""History beyond one night and one machine: stores merged by run id, drift across nights, the
static trend site, and the export to MLflow. Reads the results store and the comparison layer; the
commands above call it."""
