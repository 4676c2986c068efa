print("xok")
