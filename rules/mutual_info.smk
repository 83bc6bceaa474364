# rules of the mutual_info stage (owned by its issue); see rules/common.smk for path helpers
