-- Which TOAST-able values a change left unchanged. Events name them in
-- "unchanged_toast" (so a real value equal to '__debezium_unavailable_value'
-- stays a value); for events written before that field existed
-- (_kinesync_legacy), the value is compared with the placeholder text.
-- {{set_markers}}: one `_kinesync_unchanged_<n> = ...` per TOAST-able column.
UPDATE {{changes}} SET {{set_markers}};
UPDATE {{latest}} SET {{set_markers}};
