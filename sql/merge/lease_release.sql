DELETE FROM {{lease}} WHERE name = 'merge' AND holder = {{holder}};
