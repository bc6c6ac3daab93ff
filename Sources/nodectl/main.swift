print("nodectl")
